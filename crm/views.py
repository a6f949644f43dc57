from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_view,
)
from rest_framework import exceptions
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ahoum.errors import ErrorSerializer
from crm import receiver
from crm.permissions import HasCRMWebhookToken
from crm.serializers import (
    NotificationSerializer,
    ReceiptSerializer,
    WaitlistNotificationSerializer,
    WaitlistReceiptSerializer,
)

SIGNATURE_PARAMETERS = [
    OpenApiParameter(
        "webhook-id",
        str,
        OpenApiParameter.HEADER,
        description="Standard Webhooks message id; one already received is acknowledged "
        "with 200 and not stored again.",
    ),
    OpenApiParameter(
        "webhook-timestamp",
        str,
        OpenApiParameter.HEADER,
        description="Integer Unix seconds; must be within 5 minutes of the server's clock.",
    ),
    OpenApiParameter(
        "webhook-signature",
        str,
        OpenApiParameter.HEADER,
        description='`v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">`, '
        "keyed with the UTF-8 bytes of the receiver's bearer secret (CRM_INBOUND_SECRET, or "
        "CRM_WEBHOOK_SECRET when unset) or of the payment signing key "
        "(CRM_INBOUND_SIGNING_SECRET). Verified whenever this or webhook-timestamp is sent; "
        "only a signature with the payment signing key marks a booking paid.",
    ),
]


class CRMWebhookView(APIView):
    """The CRM's receiver (the original's `POST /webhook`), authenticated by a shared secret.

    Not a JWT: the caller is a system holding the receiver's secret (CRM_INBOUND_SECRET, or
    CRM_WEBHOOK_SECRET), sent as a bearer token or used to sign, or the payment signing key
    (CRM_INBOUND_SIGNING_SECRET), used to sign only; checked in constant time.
    """

    authentication_classes = []
    permission_classes = [HasCRMWebhookToken]
    parser_classes = [JSONParser]  # for the schema; the body is read raw (signed bytes)

    def initial(self, request, *args, **kwargs):
        # A method this receiver does not serve is a 405 whoever asks; DRF would check the
        # token first and answer 403.
        if not hasattr(self, request.method.lower()):
            raise exceptions.MethodNotAllowed(request.method)
        super().initial(request, *args, **kwargs)

    @extend_schema(
        operation_id="crm_webhook_receive",
        auth=[],
        parameters=SIGNATURE_PARAMETERS,
        request=PolymorphicProxySerializer(
            component_name="CRMWebhookNotification",
            serializers=[NotificationSerializer, WaitlistNotificationSerializer],
            resource_type_field_name=None,
        ),
        responses={
            200: PolymorphicProxySerializer(
                component_name="CRMWebhookReceipt",
                serializers=[ReceiptSerializer, WaitlistReceiptSerializer],
                resource_type_field_name=None,
            ),
            400: ErrorSerializer,
            403: ErrorSerializer,
            409: ErrorSerializer,
            413: ErrorSerializer,
        },
        description=(
            "Receive a booking or waitlist notification. Send `Authorization: Bearer <secret>` "
            "(the receiver's secret: CRM_INBOUND_SECRET, or CRM_WEBHOOK_SECRET when unset), "
            "Standard Webhooks signature headers (keyed with that secret or with the payment "
            "signing key CRM_INBOUND_SIGNING_SECRET), or both (403 `invalid_webhook_token` for a "
            "wrong or missing token without a signature). Signature headers, when sent, must "
            "verify with a `webhook-timestamp` within 5 minutes (403 `signature_invalid`). 400 "
            "names each missing or malformed field; 413 `payload_too_large` above "
            "CRM_WEBHOOK_MAX_BYTES. One CRMBooking per booking keeps the latest state (a lower "
            "`sequence` is kept as history only; only a signed notification's `sequence` is "
            'stored). With `payment_status: "paid"` and a valid signature with the payment signing '
            "key, `booking_id`, `user_id` and `event` must match a booking, which is marked paid "
            "(409 `booking_mismatch` otherwise, nothing changed). Any other one saying so is "
            "stored for review, marks nothing and answers `mark_paid_refusal`: "
            "`signature_required` (unsigned, or signed with another key), or "
            "`signing_key_not_configured` (signed while CRM_INBOUND_SIGNING_SECRET is unset: then "
            "nothing marks a booking paid). A notification whose `type` starts with `waitlist.` is "
            "a waitlist change (`waitlist_entry_id`, `user`, `event` required): stored the same "
            "way, one CRMWaitlistEntry per entry, and answered with a waitlist receipt; it marks "
            "nothing paid."
        ),
        examples=[
            OpenApiExample(
                "The original's payload",
                request_only=True,
                value={
                    "booking_id": 15,
                    "user": {"name": "Alice", "email": "alice@example.com"},
                    "event": 7,
                    "facilitator_id": 3,
                },
            )
        ],
    )
    def post(self, request: Request) -> Response:
        inbound = receiver.read_notification(request)
        if receiver.is_waitlist_notification(inbound.payload):
            serializer = WaitlistNotificationSerializer(data=inbound.payload)
            serializer.is_valid(raise_exception=True)
            waitlist_receipt = receiver.receive_waitlist_notification(
                data=serializer.validated_data,
                payload=inbound.payload,
                webhook_id=inbound.webhook_id,
                signed=inbound.signed,
                signed_for_payment=inbound.signed_for_payment,
            )
            return Response(WaitlistReceiptSerializer(waitlist_receipt).data)
        serializer = NotificationSerializer(data=inbound.payload)
        serializer.is_valid(raise_exception=True)
        receipt = receiver.receive_notification(
            data=serializer.validated_data,
            payload=inbound.payload,
            webhook_id=inbound.webhook_id,
            signed=inbound.signed,
            signed_for_payment=inbound.signed_for_payment,
        )
        return Response(ReceiptSerializer(receipt).data)


@extend_schema_view(post=extend_schema(operation_id="webhook_receive"))
class OriginalWebhookView(CRMWebhookView):
    """The same receiver at the original's path, `POST /webhook`."""
