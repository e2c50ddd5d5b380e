"""The reproduction study: the article's protocol for every model over seeds, its report beside the
article's numbers and the Keras runs, and the spread over seeds."""
