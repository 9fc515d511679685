"""qa0-label: QA0 labelling of ALMA flux-calibrator Execution Blocks with active learning."""

__version__ = "0.1.0"
