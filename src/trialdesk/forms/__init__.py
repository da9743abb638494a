"""Forms built from the fact dictionary and a trial's protocol.

A trial's patient form holds exactly the facts its criteria and arm rules read (a derived
fact brings the inputs it is derived from: age from the date of birth, ×ULN from the lab
result and its reference range, GFR from a measured GFR or height and creatinine), grouped
as a clinician reads a patient file. A submitted form becomes the same
:class:`~trialdesk.facts.patient.PatientRecord` a JSON upload gives — the form is another
way to write the record, not a second store. Errors name the field by its label and say
what to do.

:mod:`~trialdesk.forms.build` builds the form, :mod:`~trialdesk.forms.parse` reads a
submitted one, :mod:`~trialdesk.forms.table` shows a record and a screening by section.
"""
