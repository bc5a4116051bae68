"""Member profiles arrive with the tier-program issue; the app exists so the layout is complete."""
