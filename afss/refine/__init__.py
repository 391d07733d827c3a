"""Label refinement: TTA views, Weighted Boxes Fusion, confidence filtering."""
