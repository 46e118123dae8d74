"""newsmon's Airflow triggers.

A package inside plugins/ because Airflow puts the plugins folder on sys.path in every
component, so the triggerer can import ``newsmon_triggers.feed_watch.FeedWatchTrigger``
by the classpath the trigger serialises.
"""

from newsmon_triggers.feed_watch import FeedWatchTrigger, feed_digest

__all__ = ["FeedWatchTrigger", "feed_digest"]
