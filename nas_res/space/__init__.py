"""Design spaces: YAML templates read into a checked `Spec` (`template`, `dims`), the `DesignSpace` they
generate under the ResNeXt rules (sampling, enumeration), its zoo `points` and iso-complexity solving."""
