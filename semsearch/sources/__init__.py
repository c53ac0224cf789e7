"""Where papers come from: JSON Lines files, the arXiv API and the survey's packaged paper list."""
