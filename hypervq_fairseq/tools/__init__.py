"""Console scripts (plot, manifests, demo, tokens). Each imports fairseq inside its functions."""
