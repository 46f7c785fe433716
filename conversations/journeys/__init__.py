"""Journeys: trigger -> (wait -> condition -> action) steps, by concern:

* `entry`: entering subscribers (one, or a batch under UNIQUE (journey, subscriber, period_key): at most once per
  period) and the triggers (follows, topic clicks, stages, conversions, dormant spells);
* `steps`: running the due steps of a batch of enrollments, a few statements per batch (claimed with SKIP LOCKED:
  nothing runs twice), with the send policy deciding each message step's channel; `conditions` and `content`: a
  step's condition and what a message or notification step says;
* `reports`: a journey's report.
"""
