"""The EB simulator: realistic grid-source observations and their hidden reference QA0."""
