"""Where batches come from: arrays, ``PyDataset``, generators (adapters), sample and class weights."""
from .py_dataset import PyDataset, Sequence
from .adapters import (ArrayAdapter, EpochIterator, get_adapter, is_array_data, reject_extra_arrays,
                       should_validate, take, unpack)
from .weights import class_weight_to_sample_weight, check_sample_weight
