"""What the catalogue cache (events/cache.py) must forget when it changes."""

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from events import cache
from events.models import Event


@receiver(post_save, sender=Event)
@receiver(post_delete, sender=Event)
def event_changed(sender, **kwargs) -> None:
    cache.invalidate()


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def facilitator_changed(sender, instance, **kwargs) -> None:
    # The catalogue shows the facilitator's name.
    if instance.is_facilitator:
        cache.invalidate()
