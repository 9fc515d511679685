"""Features, the modAL learner, query strategies and model runs (retrain, score)."""
