"""What we are compared with: the article's models and protocol in Keras and PyTorch, and the speedrun
recipes' twins in both, each at the settings that suit it."""
