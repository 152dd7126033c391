"""The simulated world: procedural scenes with exact geometry (`scenes`) and their rendering into
images, depth and region marks (`render`). The lowest layer above the row contract."""
