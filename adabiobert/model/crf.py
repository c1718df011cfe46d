"""A linear-chain CRF over words that can only produce valid IOB2.

The likelihood is pytorch-crf's. Forbidden transitions (an ``I-X`` that starts a sentence or
follows ``O`` or another type) get a fixed score of ``FORBIDDEN`` added to the learned one, so
the structure holds during training and decoding alike and no optimizer step can undo it.
Decoding and marginals are written here, batched over sentences (pytorch-crf backtracks one
sentence at a time in Python).

Marginals are computed by forward-backward in log space with float64 accumulation, then
normalised per word: ``P(y_t = k) = softmax_k(alpha_t[k] + beta_t[k])``. In exact arithmetic
the per-word normaliser ``logsumexp_k(alpha_t[k] + beta_t[k])`` is log Z for every t; computing
it per word means the rounding error that builds up over a long recursion cancels instead of
being exponentiated, so every word's marginals sum to 1 and lie in [0, 1] at any sentence
length (float32 autograd of log Z gave values up to 10 on 30,000-word sentences).

``partial_nll`` is the likelihood of a partially annotated sentence (Tsuboi et al. 2008; the
"fuzzy CRF" of AutoNER, Shang et al. 2018; Jie et al. 2019): each word carries the set of tags its
annotation allows, and the loss is ``-(log Z_allowed - log Z)``, where ``Z_allowed`` sums the scores
of every tag path that keeps to those sets. It is how a tagger learns from a corpus that annotates
only some entity types without being taught that the other types' mentions are ``O``
(``adabiobert.model.partial_annotation`` builds the sets).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchcrf import CRF

FORBIDDEN = -10_000.0
REDUCTIONS = ("none", "sum", "mean", "token_mean")
"""As pytorch-crf's: per sentence, summed, mean per sentence, or summed over real words' count."""


class ConstrainedCRF(CRF):
    """pytorch-crf's ``CRF`` (batch first) with transition constraints.

    Args:
        num_tags: size of the tag set.
        allowed_start: (num_tags,) whether a tag may start a sentence.
        allowed: (num_tags, num_tags) whether tag j may follow tag i.
        allowed_end: (num_tags,) whether a tag may end a sentence.
    """

    def __init__(
        self,
        num_tags: int,
        allowed_start: Sequence[bool],
        allowed: Sequence[Sequence[bool]],
        allowed_end: Sequence[bool],
    ) -> None:
        super().__init__(num_tags, batch_first=True)
        self.register_buffer("start_penalty", _penalty(allowed_start, (num_tags,)))
        self.register_buffer("transition_penalty", _penalty(allowed, (num_tags, num_tags)))
        self.register_buffer("end_penalty", _penalty(allowed_end, (num_tags,)))

    # pytorch-crf reads these three names inside its score, normalizer and Viterbi code; the
    # properties hand it the learned parameters plus the fixed penalties. While CRF.__init__ is
    # still running (no penalties yet) they give the raw parameters, which it initialises.
    @property
    def start_transitions(self) -> torch.Tensor:
        return self._constrained("start_transitions", "start_penalty")

    @property
    def transitions(self) -> torch.Tensor:
        return self._constrained("transitions", "transition_penalty")

    @property
    def end_transitions(self) -> torch.Tensor:
        return self._constrained("end_transitions", "end_penalty")

    def _constrained(self, parameter: str, penalty: str) -> torch.Tensor:
        params = self.__dict__["_parameters"]
        if parameter not in params:
            raise AttributeError(parameter)  # lets nn.Module register the parameter
        buffers = self.__dict__["_buffers"]
        if penalty not in buffers:
            return params[parameter]
        return params[parameter] + buffers[penalty]

    def negative_log_likelihood(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-sentence NLL: (batch,), computed in float32.

        Args:
            emissions: (batch, words, tags).
            tags: (batch, words) tag ids, anything on padding.
            mask: (batch, words) bool; the first word of every sentence must be real.
        """
        return -self(emissions.float(), tags, mask=mask, reduction="none")

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log Z per sentence: (batch,)."""
        return self._compute_normalizer(emissions.float().transpose(0, 1), mask.transpose(0, 1))

    def partial_nll(
        self,
        emissions: torch.Tensor,
        allowed_mask: torch.Tensor,
        word_mask: torch.Tensor,
        reduction: str = "none",
    ) -> torch.Tensor:
        """The NLL of a partial annotation: ``log Z - log Z_allowed``, marginalised over its paths.

        ``Z_allowed`` sums the scores of every path whose tag at each real word is one that
        ``allowed_mask`` allows; the transition constraints weigh both sums exactly as in
        ``negative_log_likelihood``. A one-tag mask at every word gives that method's NLL; an
        all-True mask gives 0. A mask that no valid IOB2 path keeps to (``I-X`` alone on a
        sentence's first word) costs about ``-FORBIDDEN``, as an invalid gold path does there.
        Computed in float32, or float64 for float64 emissions.

        Args:
            emissions: (batch, words, tags).
            allowed_mask: (batch, words, tags) bool, the tags each word may take; rows on padding
                are ignored.
            word_mask: (batch, words) bool, real words first; the first word of every sentence
                must be real.
            reduction: one of ``REDUCTIONS``; ``token_mean`` divides the sum by the batch's real
                words (the ATS loss's per-word scale).

        Returns:
            (batch,) with ``none``, a scalar otherwise.

        Raises:
            ValueError: on an unknown reduction, shapes that do not match, or (off CUDA) a real
                word that allows no tag.
        """
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if allowed_mask.shape != emissions.shape or word_mask.shape != emissions.shape[:2]:
            raise ValueError(
                f"emissions {tuple(emissions.shape)}, allowed_mask {tuple(allowed_mask.shape)} and word_mask "
                f"{tuple(word_mask.shape)} must be (batch, words, tags), (batch, words, tags) and (batch, words)"
            )
        word_mask = word_mask.bool()
        allowed = with_padding_allowed(allowed_mask, word_mask)  # (batch, words, tags)
        # Checked off CUDA only: reading a CUDA tensor's truth value is a host sync inside a batch.
        if not allowed.is_cuda and not allowed.any(dim=-1).all():
            batch, word = (~allowed.any(dim=-1)).nonzero()[0].tolist()
            raise ValueError(f"sentence {batch} of the batch, word {word}: the allowed mask allows no tag")
        scores = emissions.to(torch.promote_types(emissions.dtype, torch.float32))  # (batch, words, tags)
        restricted = scores.masked_fill(~allowed, float("-inf"))  # (batch, words, tags)
        # One recursion for both partitions; -inf (not FORBIDDEN) keeps Z_allowed exact, and
        # padding rows are all allowed, so no row of -inf ever reaches a logsumexp's backward.
        log_z, log_z_allowed = self._log_partitions(
            torch.cat([scores, restricted]), word_mask.repeat(2, 1)
        ).chunk(2)  # (batch,) each
        nll = log_z - log_z_allowed  # (batch,)
        if reduction == "none":
            return nll
        if reduction == "sum":
            return nll.sum()
        if reduction == "mean":
            return nll.mean()
        return nll.sum() / word_mask.sum().clamp(min=1)

    def _log_partitions(self, scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log Z per sentence, (batch,), by the forward recursion in the dtype of ``scores``."""
        alpha = self._forward_scores(scores, mask)[:, -1]  # (batch, tags): padding carries the last real word's
        return torch.logsumexp(alpha + self.end_transitions.to(scores), dim=1)

    @torch.no_grad()
    def viterbi(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Best tag path per sentence, batched.

        Args:
            emissions: (batch, words, tags).
            mask: (batch, words) bool, real words first.

        Returns:
            (batch, words) tag ids; positions past a sentence's end hold 0.
        """
        emissions = emissions.float()
        batch, words, _ = emissions.shape
        score = self.start_transitions + emissions[:, 0]  # (batch, tags)
        history = []
        transitions = self.transitions.unsqueeze(0)  # (1, from, to)
        for t in range(1, words):
            candidates = score.unsqueeze(2) + transitions  # (batch, from, to)
            best_score, best_previous = candidates.max(dim=1)  # (batch, to)
            step = mask[:, t].unsqueeze(1)
            score = torch.where(step, best_score + emissions[:, t], score)
            # On padding, "previous" is the tag itself, so backtracking walks through unchanged.
            history.append(torch.where(step, best_previous, torch.arange(score.shape[1], device=score.device)))
        score = score + self.end_transitions
        best_last = score.argmax(dim=1)  # (batch,)
        path = torch.zeros((batch, words), dtype=torch.long, device=emissions.device)
        lengths = mask.sum(dim=1)
        current = best_last
        for t in range(words - 1, -1, -1):
            path[:, t] = current
            if t > 0:
                current = history[t - 1].gather(1, current.unsqueeze(1)).squeeze(1)
        return path * (torch.arange(words, device=path.device).unsqueeze(0) < lengths.unsqueeze(1))

    @torch.no_grad()
    def marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """P(tag of word t = k | sentence) for every word and tag, by forward-backward.

        Log-space forward and backward recursions in float64, batched over sentences (the loop
        runs over word positions only); each word's marginals are then normalised on their own
        (a softmax over tags of ``alpha + beta``), see the module docstring. Each sentence's
        backward recursion and end transitions start at its own last real word.

        Args:
            emissions: (batch, words, tags), any float dtype and device.
            mask: (batch, words) bool, real words first; the first word of every sentence must
                be real.

        Returns:
            (batch, words, tags) float32 probabilities in [0, 1]; each real word's row sums to 1,
            padding rows are 0.
        """
        # Checked off CUDA only: reading a CUDA tensor's truth value is a host sync inside a batch.
        assert mask.is_cuda or mask[:, 0].all(), "the first word of every sentence must be real"
        scores = emissions.double()  # (batch, words, tags)
        mask = mask.bool()
        alphas = self._forward_scores(scores, mask)  # (batch, words, tags)
        betas = self._backward_scores(scores, mask)  # (batch, words, tags)
        marginals = torch.softmax(alphas + betas, dim=-1).clamp_(0.0, 1.0)  # (batch, words, tags)
        return (marginals * mask.unsqueeze(-1)).float()

    def _forward_scores(self, scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """alpha_t[k]: log-sum of the scores of every prefix ending in tag k at word t.

        Args:
            scores: (batch, words, tags) emissions (float64 for marginals).
            mask: (batch, words) bool.

        Returns:
            (batch, words, tags) in the dtype of ``scores``; on padding, the last real word's alpha carried on.
        """
        transitions = self.transitions.to(scores).unsqueeze(0)  # (1, from, to)
        alpha = self.start_transitions.to(scores) + scores[:, 0]  # (batch, tags)
        alphas = [alpha]
        for t in range(1, scores.shape[1]):
            step = torch.logsumexp(alpha.unsqueeze(2) + transitions, dim=1) + scores[:, t]  # (batch, to)
            alpha = torch.where(mask[:, t].unsqueeze(1), step, alpha)
            alphas.append(alpha)
        return torch.stack(alphas, dim=1)  # (batch, words, tags)

    def _backward_scores(self, scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """beta_t[k]: log-sum of the scores of every suffix after tag k at word t, end included.

        Args:
            scores: (batch, words, tags) float64 emissions.
            mask: (batch, words) bool, real words first.

        Returns:
            (batch, words, tags) float64; a sentence's last real word (and its padding) holds
            the end transitions, so each sentence's recursion starts at its own end.
        """
        transitions = self.transitions.to(scores).unsqueeze(0)  # (1, from, to)
        end = self.end_transitions.to(scores).expand(scores.shape[0], -1)  # (batch, tags)
        beta = end
        betas = [beta]
        for t in range(scores.shape[1] - 2, -1, -1):
            following = (scores[:, t + 1] + beta).unsqueeze(1)  # (batch, 1, to)
            step = torch.logsumexp(transitions + following, dim=2)  # (batch, from)
            # Word t+1 is padding exactly when t is the last real word or past it: reset to the end.
            beta = torch.where(mask[:, t + 1].unsqueeze(1), step, end)
            betas.append(beta)
        return torch.stack(betas[::-1], dim=1)  # (batch, words, tags)


def with_padding_allowed(allowed_mask: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
    """``allowed_mask`` with every tag allowed on padding, so that padding adds no -inf row.

    Args:
        allowed_mask: (batch, words, tags) bool.
        word_mask: (batch, words) bool.

    Returns:
        (batch, words, tags) bool.
    """
    return allowed_mask.bool() | ~word_mask.bool().unsqueeze(-1)


def _penalty(allowed, shape) -> torch.Tensor:
    allowed = torch.as_tensor(allowed, dtype=torch.bool)
    if tuple(allowed.shape) != shape:
        raise ValueError(f"constraint of shape {tuple(allowed.shape)}, expected {shape}")
    return torch.where(allowed, 0.0, FORBIDDEN)
