"""fairseq_lrn.tools.generate_output: the one reader of fairseq-generate output."""

import pytest

from fairseq_lrn.errors import GenerateOutputError
from fairseq_lrn.tools.generate_output import hypotheses_in_order, parse_generate_output

OUTPUT = """2026-12-01 | INFO | fairseq_cli.generate | loading
S-1\tb c
T-1\tc b
H-1\t-0.25\tc b
D-1\t-0.25\tc b .
P-1\t-0.1 -0.2
S-0\ta
T-0\ta
H-0\t-0.5\t
H-0\t-0.9\tnot the first
D-0\t-0.5\t
Generate test with beam=5: BLEU4 = 100.00
"""


def test_parse_keeps_the_first_hypothesis_of_each_id_and_empty_ones():
    sentences = parse_generate_output(OUTPUT)
    assert sentences == {0: {"S": "a", "T": "a", "H": "", "D": ""},
                         1: {"S": "b c", "T": "c b", "H": "c b", "D": "c b ."}}


def test_hypotheses_in_order_prefer_detokenized_lines():
    assert hypotheses_in_order(parse_generate_output(OUTPUT)) == (["", "c b ."], "D")
    no_d = parse_generate_output("H-1\t-1\ty\nH-0\t-1\tx\n")
    assert hypotheses_in_order(no_d) == (["x", "y"], "H")
    assert hypotheses_in_order({}) == ([], "H")


def test_missing_ids_are_an_error_naming_them():
    with pytest.raises(GenerateOutputError, match=r"gen.out: H- lines lack sentence ids 1, 3"):
        hypotheses_in_order(parse_generate_output("H-0\t-1\tx\nH-2\t-1\ty\nH-4\t-1\tz\n"), what="gen.out")


def test_decoding_seconds_reads_the_translated_line():
    from fairseq_lrn.tools.generate_output import decoding_seconds

    log = ("2026-12-06 | INFO | fairseq_cli.generate | NOTE: hypothesis and token scores are output in base 2\n"
           "2026-12-06 | INFO | fairseq_cli.generate | Translated 1,266 sentences (23,456 tokens) in 12.3s "
           "(102.93 sentences/s, 1906.99 tokens/s)\n")
    assert decoding_seconds(log) == 12.3
    assert decoding_seconds("fairseq-generate died before its summary") is None
