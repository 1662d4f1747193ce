"""Where batches come from: arrays, ``PyDataset``, generators and ``Dataset`` pipelines (adapters),
sample and class weights, image files and folders."""
from .py_dataset import PyDataset, Sequence
from .dataset import AUTOTUNE, Dataset
from .adapters import (ArrayAdapter, EpochIterator, get_adapter, is_array_data, reject_extra_arrays,
                       replicas_for_fit, should_validate, take, unpack)
from .weights import class_weight_to_sample_weight, check_sample_weight
from .images import array_to_img, img_to_array, load_img, save_img, to_categorical
from .directory import image_dataset_from_directory, segmentation_dataset_from_directory
