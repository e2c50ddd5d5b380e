"""Recipes beyond the article's protocol: what each choice of a recipe is worth (ablations, precise
BatchNorm) and the time each takes to a target accuracy (speedruns, accuracy against seconds)."""
