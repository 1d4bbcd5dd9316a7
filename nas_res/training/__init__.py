"""Training one net: the `recipe`, optimiser, the `trainer`, `checkpoint`s, `evaluation`, fitting an arch
to the data, devices and threads, the VAE's loss (`elbo`) and how a run ended (`status`)."""
