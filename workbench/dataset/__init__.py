"""The dataset: exact synthetic spatial questions on rendered views, saved as a Hugging Face
`DatasetDict` (`build`, with its settings in `settings`), and rows made from an uploaded image
for the demo and `workbench ask` (`freeform`). Taught in `notebooks/01_build_data.ipynb`."""

from workbench.dataset.build import build_dataset, is_dataset_dir, load_dataset_dir, read_data_card
from workbench.dataset.settings import DEFAULT_CATEGORIES, PRESETS, DataSettings

__all__ = ["DEFAULT_CATEGORIES", "PRESETS", "DataSettings", "build_dataset", "is_dataset_dir", "load_dataset_dir",
           "read_data_card"]
