"""fairseq systems built in-process with fairseq's own machinery: options -> omegaconf config ->
task -> model / criterion -> :class:`fairseq.trainer.Trainer` (and :class:`SequenceGenerator`), so
a "training step" here is exactly what ``fairseq-train`` runs per update."""

import gc
import time
from typing import List, Optional, Sequence

import torch


def parse_fairseq_args(argv: List[str]):
    """fairseq-train's parser on ``argv`` -> (argparse Namespace, omegaconf config)."""
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    import fairseq_lrn.models  # noqa: F401  registers the lrn architectures (see note below)

    # Note: fairseq's --user-dir import skips fairseq_lrn.models when the package was already
    # imported (as the benchmarks do), hence the explicit import above.
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, input_args=argv)
    return args, convert_namespace_to_omegaconf(args)


def count_params(model: torch.nn.Module) -> int:
    """Distinct parameters (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def build_model(argv: List[str]) -> torch.nn.Module:
    """The model of ``argv`` alone (no criterion, no Trainer): for sizing other systems on it."""
    from fairseq import tasks

    _, cfg = parse_fairseq_args(argv)
    return tasks.setup_task(cfg.task).build_model(cfg.model)


def count_model_params(argv: List[str]) -> int:
    """:func:`count_params` of the model ``argv`` builds."""
    return count_params(build_model(argv))


class Batches:
    """Endless shuffled batches of a task's split (a new epoch when one ends; ``max_tokens`` each)."""

    def __init__(self, task, max_tokens: int, seed: int, split: str = "train"):
        self.epoch_itr = task.get_batch_iterator(dataset=task.dataset(split), max_tokens=max_tokens,
                                                 max_positions=None, ignore_invalid_inputs=True, seed=seed,
                                                 num_workers=0, epoch=1)
        self.itr = self.epoch_itr.next_epoch_itr(shuffle=True)

    def __next__(self) -> dict:
        try:
            return next(self.itr)
        except StopIteration:
            self.itr = self.epoch_itr.next_epoch_itr(shuffle=True)
            return next(self.itr)

    @property
    def epochs(self) -> float:
        """Epochs done, fractional within the current one."""
        return self.epoch_itr.epoch - 1 + (self.itr.n / len(self.itr) if len(self.itr) else 0)


class System:
    """One fairseq model with its criterion and Trainer (optimizer built on the first step)."""

    def __init__(self, name: str, argv: List[str], note: str = ""):
        from fairseq import tasks, utils
        from fairseq.trainer import Trainer

        self.name, self.argv, self.note = name, argv, note
        _, self.cfg = parse_fairseq_args(argv)
        utils.set_torch_seed(self.cfg.common.seed)
        self.task = tasks.setup_task(self.cfg.task)
        self.model = self.task.build_model(self.cfg.model)
        self.criterion = self.task.build_criterion(self.cfg.criterion)
        self.params = count_params(self.model)
        self.trainer = Trainer(self.cfg, self.task, self.model, self.criterion)
        self.device = next(self.model.parameters()).device
        self.generators = {}

    def load_splits(self, splits: Sequence[str] = ("train", "test")):
        """The system's task with ``splits`` loaded (batches are drawn from it)."""
        for split in splits:
            if split not in self.task.datasets:
                self.task.load_dataset(split, combine=False, epoch=1)
        return self.task

    # -- training
    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def train_steps(self, batches: Sequence[dict]) -> List[float]:
        """One full fairseq update per batch (forward, backward, clip, Adam); seconds each."""
        times = []
        for sample in batches:
            self.sync()
            start = time.perf_counter()
            self.trainer.train_step([sample])
            self.sync()
            times.append(time.perf_counter() - start)
        return times

    def train_for(self, batches: Batches, seconds: float) -> dict:
        """Updates on ``batches`` for ``seconds`` of wall-clock (batch fetching included):
        ``{"seconds", "updates", "tokens"}`` (target tokens)."""
        updates = tokens = 0
        self.sync()
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            sample = next(batches)
            self.train_steps([sample])
            updates, tokens = updates + 1, tokens + int(sample["ntokens"])
        return {"seconds": time.perf_counter() - start, "updates": updates, "tokens": tokens}

    # -- generation
    def generator(self, beam: int):
        """fairseq's SequenceGenerator (beam ``beam``; 1 = greedy), cached per beam."""
        if beam not in self.generators:
            from fairseq.sequence_generator import SequenceGenerator

            self.generators[beam] = SequenceGenerator([self.model], self.task.target_dictionary,
                                                      beam_size=beam)
        return self.generators[beam]

    def generate(self, batches: Sequence[dict], beam: int, forced_lengths: Optional[Sequence[int]] = None,
                 max_len_a: float = 1.5, max_len_b: int = 10) -> List[List[dict]]:
        """Run the generator over ``batches`` in eval mode under no_grad; returns the hypotheses.

        With ``forced_lengths`` every hypothesis of batch k is made exactly that many tokens
        long (min_len = max_len = L, then EOS): the same decoding work for every system,
        trained or not. Otherwise lengths are the model's own (max_len_a * src + max_len_b)."""
        from fairseq import utils

        gen = self.generator(beam)
        self.model.eval()
        outputs = []
        try:
            with torch.no_grad():
                for k, sample in enumerate(batches):
                    if forced_lengths is not None:
                        gen.max_len_a, gen.max_len_b, gen.min_len = 0, forced_lengths[k], forced_lengths[k]
                    else:
                        gen.max_len_a, gen.max_len_b, gen.min_len = max_len_a, max_len_b, 1
                    if self.device.type == "cuda":
                        sample = utils.move_to_cuda(sample)
                    outputs.append(gen.generate([self.model], sample))
        finally:
            self.model.train()
        self.sync()
        return outputs

    def time_generation(self, batches: Sequence[dict], beam: int, forced_lengths: Sequence[int]) -> float:
        """Sentences per second over ``batches`` (forced lengths; see :meth:`generate`)."""
        n = sum(int(b["nsentences"]) for b in batches)
        self.sync()
        start = time.perf_counter()
        self.generate(batches, beam, forced_lengths)
        return n / (time.perf_counter() - start)

    def close(self) -> None:
        del self.trainer, self.model, self.criterion, self.generators
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
