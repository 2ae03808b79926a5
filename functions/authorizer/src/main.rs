//! Lambda entry point of the authorizer: configuration once per cold start, then the runtime
//! loop. A configuration problem is reported (every problem at once) and the function does not
//! start, like every other function.
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let authorizer = match authorizer::Authorizer::cold_start().await {
        Ok(a) => a,
        Err(problems) => {
            tracing::error!(problems = %problems, "cold start failed");
            return Err(problems.into());
        }
    };
    let authorizer: &'static authorizer::Authorizer = Box::leak(Box::new(authorizer));
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, std::convert::Infallible>(authorizer.authorize(&event.payload))
    }))
    .await
}
