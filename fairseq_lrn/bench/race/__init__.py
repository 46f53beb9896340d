"""The pieces of ``scripts/quality_race.py`` (the same-wall-clock quality race), one job a module:

* :mod:`.common`: RaceError and the log line;
* :mod:`.systems`: the systems raced and the training recipe they share, as data;
* :mod:`.corpus`: input checks and the resumable preparation (tokenize, clean, BPE, binarize);
* :mod:`.run`: train, translate and score one system;
* :mod:`.train_log`: the numbers of a fairseq-train log;
* :mod:`.report`: the markdown table and the JSON report.

Importing this package does nothing.
"""
