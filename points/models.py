"""Models of this bounded context arrive with its issue (see ARCHITECTURE.md)."""
