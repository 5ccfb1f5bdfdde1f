"""Data-quality checks of stored market data (``db.quality``, CLI ``marketdb quality``).

Per instrument, over a time range:

* ``gaps`` -- bars missing against the exchange calendar (every session for
  daily bars; every bucket inside the sessions for intraday bars; UTC days or
  buckets for 24/7 instruments);
* ``duplicates`` -- trades (and quotes) repeated at the same instant with the
  same values under different sequence numbers (a feed delivered twice);
* ``outliers`` -- ticks (or bar closes without ticks) whose log return has a
  robust z-score (median and MAD, Iglewicz-Hoaglin) above ``z``, counted when the
  price jumps away and back, i.e. a bad print rather than a level change;
* ``vendor_vs_derived`` -- vendor bars against the bars marketdb derived from
  the stored trades (source ``trades``) for the same buckets, beyond ``tolerance``;
* ``stale`` -- no data for more than ``stale_sessions`` sessions up to ``now``.

Every check returns a status (``ok``, ``warn``, ``fail`` or ``n/a``), a count and
up to ``limit`` examples; :meth:`QualityReport.as_dict` is the JSON form.
"""

from __future__ import annotations

from ._service import Check, Quality, QualityReport

__all__ = ["Check", "Quality", "QualityReport"]
