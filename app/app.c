/* The application's per-node state, hung on the node's opaque `app` pointer. */
#include <kw/app.h>

void kw_app_attach(struct kw_node *n, struct kw_app *app)
{
	n->app = app;
}

struct kw_app *kw_app_of(struct kw_node *n)
{
	return (struct kw_app *)n->app;
}
