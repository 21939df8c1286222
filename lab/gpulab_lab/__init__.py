"""gpulab-lab: the test lab of the gpulab.cluster collection (see lab/README.md)."""
