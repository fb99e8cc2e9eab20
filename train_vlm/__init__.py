"""train_vlm: fine-tune Qwen3-VL on the simulator's exported records and evaluate it on real OCTA.

A PyTorch package that never imports the simulator: the two meet only through the exported Parquet shards.
Modules (import the ones you need; importing this package alone pulls in no torch):

- `train_vlm.data`: read export shards as a `datasets.Dataset` with images decoded.
- `train_vlm.model`: load model + processor, freeze per train mode (lora / vision / full).
- `train_vlm.train`: TRL SFTTrainer with assistant-only loss; YAML recipes in `train_vlm/recipes/`.
- `train_vlm.evaluate`: DR vs NORMAL evaluation on a labelled image folder, with bootstrap intervals.
- `train_vlm.answers`, `train_vlm.metrics`, `train_vlm.intervals`: answer parsing, scikit-learn metrics,
  stratified bootstrap intervals; `train_vlm.report`: Markdown reports.
- `train_vlm.prompts`: the export's prompt set, so evaluation asks in the training data's words.
- `train_vlm.merge_lora`: merge a LoRA adapter into its base.
- `train_vlm.reproduce`: export -> train -> merge -> evaluate base and tuned -> report, in one command.
- `train_vlm.tiny`: a tiny random Qwen3-VL for offline tests.
"""

from .answers import ParsedAnswer as ParsedAnswer
from .answers import parse_answer as parse_answer
from .metrics import balanced_accuracy as balanced_accuracy
from .metrics import classification_report as classification_report
from .metrics import confusion_matrix as confusion_matrix
from .metrics import per_class_recall as per_class_recall
from .metrics import roc_auc as roc_auc

__version__ = "0.1.0"
