"""Networks: `Arch` (the one description), blocks with their cost formulas beside them, exact `cost`
(fvcore as `referee`), budgets, `build` (ResNet, VAE), the `zoo` of reference nets and `Residual`."""
