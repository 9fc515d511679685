"""Auto-QA0: which EBs the model may decide alone at a lead-chosen error rate, why it thinks so, and the hand-offs."""
