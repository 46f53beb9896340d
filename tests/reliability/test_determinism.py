"""Same seed, same data, CPU: a second run of the reference command gives identical losses,
bit-identical checkpoints and identical translations."""

import os

from tests.reliability.helpers import assert_same_state, launch, losses, train_args


def test_two_runs_with_the_same_seed_are_identical(corpus, reference, tmp_path):
    from fairseq_lrn.models import LRNModel

    _, data_bin = corpus
    ref_dir, ref_log = reference
    save = tmp_path / "again"
    log = tmp_path / "again.log"
    assert launch(train_args(data_bin, save, "--update-freq", "2"), log) == 0, log.read_text()[-3000:]
    assert losses(log.read_text()) == losses(ref_log) and len(losses(ref_log)) == 13
    names = sorted(os.listdir(ref_dir))
    assert sorted(os.listdir(save)) == names
    for name in names:
        assert_same_state(save / name, os.path.join(ref_dir, name))  # bit-identical, Adam state included

    sentences = ["w1 w2 w3 w4", "w5 w0 w7", "w9 w9 w3 w8 w2", "w11 w10"]
    translations = []
    for folder in (ref_dir, save):
        hub = LRNModel.from_pretrained(str(folder), checkpoint_file="checkpoint_last.pt", data_name_or_path=data_bin,
                                       source_lang="src", target_lang="tgt").eval()
        translations.append(hub.translate(sentences, beam=4, max_len_b=20))
        translations.append(hub.translate(sentences, beam=4, max_len_b=20))  # and again, same process
    assert all(t == translations[0] for t in translations)
