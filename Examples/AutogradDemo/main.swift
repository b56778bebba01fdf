import FlashGrad

// Fits y = 3x − 2 with a weight and a bias, by hand-written gradient descent on the autograd graph.
RandomGenerator.manualSeed(0)
let x = Tensor<Float>.uniform([64, 1], low: -1, high: 1)
let y = 3 * x - 2
let weight = Tensor<Float>.zeros([1, 1], requiresGrad: true)
let bias = Tensor<Float>.zeros([1], requiresGrad: true)
for step in 0...200 {
    let loss = (x.matmul(weight) + bias - y).pow(2).mean()
    loss.backward()
    withoutGradients {
        for parameter in [weight, bias] { parameter.assign(parameter - 0.1 * parameter.grad!) }
    }
    weight.zeroGrad()
    bias.zeroGrad()
    if step % 50 == 0 { print("step \(step): loss \(loss.item)") }
}
print("weight \(weight.item), bias \(bias.item)")
