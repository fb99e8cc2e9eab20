"""Grounded text for every image: measure -> staged reasoning and task answers -> claim check.

``measure.measure`` (host side, numpy) builds the ``Measured`` record from a rendered sample; every text
function takes ``(seed or rng, measured)`` only; ``check.contradictions`` parses the claims of any text
(templates or paraphrases) back and compares them with the record. Grading rules: ``measure.grade``.
The functions named like their modules (``measure.measure``, ``reasoning.reasoning``) are not re-exported.
"""

from .check import contradictions as contradictions
from .check import final_line_parses as final_line_parses
from .measure import Lesion as Lesion
from .measure import Measured as Measured
from .measure import grade as grade
from .reasoning import families as families
from .tasks import TASKS as TASKS
from .tasks import answer as answer
from .tasks import conversation as conversation
