"""A push's deliveries: sending a page, the caps and quotas checked before WeChat is called, what WeChat's answers
and reports change, and a push's progress.

* sending.py      `deliveries_send_page`: one page task (claim, skip, send through the client while the next chunk
                  is prepared, write outcomes);
* quotas.py       quiet hours, each recipient's caps, WeChat's daily and monthly quotas;
* rendering.py    each recipient's message, built by the gateway's builders (wechat_crm.wechat.messages);
* outcomes.py     WeChat's answers as row outcomes written in one statement, retries with backoff;
* start_marks.py  which messages of a chunk started and which WeChat accepted, for rows a dead worker left;
* reports.py      TEMPLATESENDJOBFINISH and MASSSENDJOBFINISH;
* progress.py     a push's counts by status, and its end once no delivery is open;
* preview.py      "Send a test to me";
* rows.py         the named values passed between these steps.
"""

from .outcomes import retry_delay
from .preview import push_send_test
from .progress import push_finish_if_done, push_progress
from .quotas import quiet_hours_end
from .rendering import Renderer
from .reports import deliveries_job_finish, delivery_job_finish, delivery_job_finish_retry, mass_job_finish
from .sending import PageOutcome, deliveries_send_page
from .start_marks import StartMarks, deliveries_recover_accepted

__all__ = [
    "PageOutcome",
    "Renderer",
    "StartMarks",
    "deliveries_job_finish",
    "deliveries_recover_accepted",
    "deliveries_send_page",
    "delivery_job_finish",
    "delivery_job_finish_retry",
    "mass_job_finish",
    "push_finish_if_done",
    "push_progress",
    "push_send_test",
    "quiet_hours_end",
    "retry_delay",
]
