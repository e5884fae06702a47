"""Linear (GraphQL API): issues with history, comments and links; projects; opt-in comment/issue writes."""
