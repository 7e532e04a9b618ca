"""The people-income demo: a functional TransformerNet, its data and its training.

An application of the core, not part of it: it uses only the public face of
``tfx_explain``. The seed's task is a small Transformer regression model on people
data (sex, age, State, politics -> income); the data files ship inside this
package, so ``tfx-explain people`` works from an installed wheel.
"""

from ._data import PEOPLE_FEATURES as PEOPLE_FEATURES
from ._data import PEOPLE_FIELDS as PEOPLE_FIELDS
from ._data import default_people_paths as default_people_paths
from ._data import load_people as load_people
from ._data import people_row as people_row
from ._model import TransformerNet as TransformerNet
from ._model import init_transformer_net as init_transformer_net
from ._model import transformer_net as transformer_net
from ._train import AdamState as AdamState
from ._train import PeopleRun as PeopleRun
from ._train import TrainResult as TrainResult
from ._train import accuracy as accuracy
from ._train import adam_init as adam_init
from ._train import adam_update as adam_update
from ._train import field_importance as field_importance
from ._train import load_params as load_params
from ._train import save_params as save_params
from ._train import train_people as train_people
from ._train import train_transformer_net as train_transformer_net

__all__ = [
    "PEOPLE_FEATURES",
    "PEOPLE_FIELDS",
    "AdamState",
    "PeopleRun",
    "TrainResult",
    "TransformerNet",
    "accuracy",
    "adam_init",
    "adam_update",
    "default_people_paths",
    "field_importance",
    "init_transformer_net",
    "load_params",
    "load_people",
    "people_row",
    "save_params",
    "train_people",
    "train_transformer_net",
    "transformer_net",
]
