"""The product's URLs and one API view that fails (a bug stands in for any unexpected exception)."""

from django.urls import path
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny

from wechat_crm.urls import urlpatterns as product_urlpatterns


@api_view(["GET"])
@permission_classes([AllowAny])
def crash(request):
    raise ZeroDivisionError("a bug")


def plain_crash(request):
    raise KeyError("a bug in a plain Django view")


urlpatterns = [path("api/_crash/", crash), path("api/_plain_crash/", plain_crash), *product_urlpatterns]
