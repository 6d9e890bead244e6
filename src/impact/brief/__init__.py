"""Policy briefs (Dutch and English, HTML and PDF), publication tables and the index.

Built only from the output tables (:mod:`impact.brief.facts` keeps the source of every
number); :func:`~impact.brief.publish.publish` is the ``publish`` stage.
"""

from impact.brief.params import BriefParams

__all__ = ["BriefParams"]
