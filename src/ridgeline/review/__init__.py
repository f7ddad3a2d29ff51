"""Multi-review of list entries, the review queue and reviewer wellness."""
