"""`authml report`: one self-contained HTML file with the investigation views."""
