"""gpulab: the command line of the gpulab.cluster collection (deploy, repair, add-node, status, plan)."""
