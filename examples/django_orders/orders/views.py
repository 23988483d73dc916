from __future__ import annotations

import json

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from orders.events import publish_order_created, request_shipping
from orders.models import Order


@csrf_exempt
@require_POST
def create_order(request: HttpRequest) -> HttpResponse:
    data = json.loads(request.body or b"{}")
    with transaction.atomic():
        order = Order.objects.create(sku=str(data["sku"]), quantity=int(data.get("quantity", 1)))
        # Runs after the commit, so never in shadow traffic (nothing commits there).
        transaction.on_commit(lambda: publish_order_created(order.pk, order.sku, order.quantity))
    shipping = request_shipping(order.pk)
    return JsonResponse({"id": order.pk, "shipping": shipping["status"]}, status=201)


@require_GET
def get_order(request: HttpRequest, order_id: int) -> HttpResponse:
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        return JsonResponse({"error": "not found"}, status=404)
    return JsonResponse({"id": order.pk, "sku": order.sku, "quantity": order.quantity})
