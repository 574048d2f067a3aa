"""The portal's pages, one module per page group, each with its own router under /a/{slug}/.

`services.portal.endpoints` mounts them all (`PAGE_ROUTERS`): a new page group is added to
that one list, which the app includes and the portal's isolation suite reads. Handlers read
the form, call a service and render a template; what several groups share (where a sign-in
goes next, the account page) is in `services.portal.flow`.
"""
