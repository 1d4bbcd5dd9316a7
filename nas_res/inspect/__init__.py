"""Looking inside a network: gradient flow at initialisation (`gradients`) and the feature maps a trained
net computes (`activations`)."""
