"""``rlhub validate --audit``: measure how often an env's verifier rejects right answers and accepts wrong ones.

``rlhub validate`` proves that gold earns full marks and that hacks earn nothing. The audit measures the
two error rates that decide what a policy learns, on the first ``-n`` test examples (16 by default):

* **False negatives** (FN%): from each example's gold, rewrites that a careful grader accepts (the same
  number written ``1\\,000`` or ``\\frac{3}{4}``, an equivalent query in a ```` ```sql ```` fence, the
  program reformatted, the tool call's arguments reordered, the response with a trailing newline).
  A case counts when its correctness reward is below 1: the policy is punished for being right.
* **False positives** (FP%): near misses that a careful grader rejects (off by one, a sign flipped, a
  term dropped, ``>=`` for ``>``, a required argument missing, one constraint broken). A case counts
  when its correctness reward is above 0: the policy learns the hole. Code envs have no FP set: their
  tests decide, and ``rlhub validate``'s probes try the forgeries.
* **Slowest scoring**: the longest one completion of the audit took to score.
* **A scripted-policy ladder**: the mean correctness of an oracle (the gold), a random policy (the
  gold's layout around a random answer of its kind) and a simple heuristic (per layout: the largest
  number of the question, ``SELECT *`` from the first table, the first test's expected value, the
  request echoed): a verifier without a GPU's word that it tells them apart.

Every set is right by construction: it is built from the gold's structure (its exact value, its
parsed expression, calls, query or program), and a case that the construction cannot prove right or
wrong is dropped (a near miss that equals the gold, a query no database separates from the gold).
Which generator serves an example follows its gold's answer layout, found as ``rlhub validate``'s
probes find it: :mod:`~rlhub.authoring.audit.answers` (numbers, LaTeX, words in ``<answer>`` or
``\\boxed{}``), :mod:`~rlhub.authoring.audit.expressions` (Countdown), :mod:`~rlhub.authoring.audit.calls`
(``<tool_call>`` blocks), :mod:`~rlhub.authoring.audit.queries` (SQL with a ``databases`` column),
:mod:`~rlhub.authoring.audit.programs` (a fenced program) and :mod:`~rlhub.authoring.audit.responses`
(free text with a ``constraints`` column). An env class that knows better defines
``audit_cases(example) -> (accept, reject)``, two lists of completions, and the audit uses those.

Bounds: FN at most 2%, FP at most 1%, 5 s per completion, oracle at least 0.99, random at most 0.05 and
heuristic at most 0.5 mean correctness; an env class overrides any with ``audit_bounds = {"fn": 0.05}``.
An env fails the audit above a bound, and the report names the figure and a few failing cases.
``--record`` stores the audits in ``docs/audit.json``, which the env cards show.
"""

from rlhub.authoring.audit.cases import Case, Cases
from rlhub.authoring.audit.run import AUDIT_EXAMPLES, DEFAULT_BOUNDS, AuditReport, audit, audit_env
from rlhub.authoring.audit.store import audit_section, load_audits, record

__all__ = [
    "AUDIT_EXAMPLES",
    "DEFAULT_BOUNDS",
    "AuditReport",
    "Case",
    "Cases",
    "audit",
    "audit_env",
    "audit_section",
    "load_audits",
    "record",
]
