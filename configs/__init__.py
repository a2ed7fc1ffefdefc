"""YAML configs for fairseq-hydra-train (installed as ``hypervq_fairseq.configs``)."""
