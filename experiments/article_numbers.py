"""The article's published numbers (docs/article.md), for the reports that compare with them."""

# Test loss / accuracy after phase 1 and phase 2, and parameters.
ARTICLE = {
    'cnn1': {'phase1': (0.2485, 0.9104), 'phase2': (0.2210, 0.9229), 'parameters': 693_962},
    'cnn3': {'phase1': (0.2497, 0.9079), 'phase2': (0.2291, 0.9117), 'parameters': 241_546},
    'cnn4': {'phase1': (0.2657, 0.9052), 'phase2': (0.1777, 0.9352), 'parameters': 1_221_546},
    # VGG19: one phase (the head's 50 epochs); the article reported it after that phase.
    'vgg19': {'phase1': (0.6238, 0.7664), 'parameters': None},
}
