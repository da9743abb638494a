"""The treatment calendar: planned events with their doses (plan, dose), what happened
(records, status) and its export (iCalendar, JSON) and rendering."""
