"""Keras-style layers. Each is thin: settings, weights, shape checks; compute goes through ``gpunet.primitives``."""
from .base import Layer, SymbolicTensor, clear_session
from .core import *           # Input, InputLayer, Dense, Activation, Flatten, Reshape, Dropout
from .activations import *    # ReLU, LeakyReLU, ELU, Sigmoid, Tanh, Softmax
from .conv import *           # Conv2D, Conv2DTranspose
from .conv1d import *         # Conv1D, Conv1DTranspose
from .conv_depthwise import *  # DepthwiseConv2D, SeparableConv2D
from .pooling import *        # MaxPooling2D, MaxPool2D, AveragePooling2D, GlobalAveragePooling2D
from .normalization import *  # BatchNormalization
from .normalization_groups import *  # LayerNormalization, GroupNormalization
from .reshaping import *      # UpSampling2D, ZeroPadding2D
from .merging import *        # Concatenate, Add, Subtract, Multiply, Average, Maximum, Minimum, add, ...
from .preprocessing import *  # Rescaling, Resizing, CenterCrop, RandomCrop, RandomFlip, RandomTranslation, ...
from .custom import *         # Lambda
from .preprocessing_normalization import *  # Normalization
from .small import *          # Identity, Permute, UnitNormalization, ActivityRegularization
