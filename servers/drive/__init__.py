"""Google Drive: search, metadata and text of Docs, Sheets, Slides, PDFs and text files (read only)."""
