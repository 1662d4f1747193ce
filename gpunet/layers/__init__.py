"""Keras-style layers. Each is thin: settings, weights, shape checks; compute goes through ``gpunet.primitives``."""
from .base import Layer, SymbolicTensor, clear_session
from .core import *           # Input, InputLayer, Dense, Activation, Flatten, Reshape, Dropout
from .activations import *    # ReLU, LeakyReLU, ELU, Sigmoid, Tanh, Softmax
from .conv import *           # Conv2D, Conv2DTranspose
from .pooling import *        # MaxPooling2D, MaxPool2D, AveragePooling2D, GlobalAveragePooling2D
from .normalization import *  # BatchNormalization
from .reshaping import *      # UpSampling2D, ZeroPadding2D
from .merging import *        # Concatenate, Add
from .preprocessing import *  # Rescaling, Resizing, CenterCrop, RandomCrop, RandomFlip, RandomTranslation, ...
