"""Deploy: guarded plan/apply over Argo CD and GitHub, with signed single-use plans."""
