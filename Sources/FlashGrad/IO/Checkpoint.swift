import Foundation

/// A training checkpoint in one safetensors file: the model's parameters under their own names
/// (so Python's `safetensors` reads them directly), the optimizer's state under `optimizer.`, and
/// string metadata such as the step and the data generator's state.
public enum Checkpoint {
    static let optimizerPrefix = "optimizer."

    /// Saves atomically (see ``Safetensors/save(_:metadata:to:)``).
    public static func save<Scalar: TensorScalar, O: Optimizer>(model: Module<Scalar>, optimizer: O?, metadata: [String: String] = [:],
                                                                to url: URL) throws where O.Scalar == Scalar {
        var tensors = model.stateDictionary()
        for (name, tensor) in optimizer?.stateDictionary() ?? [:] { tensors[optimizerPrefix + name] = tensor }
        try Safetensors.save(tensors, metadata: metadata, to: url)
    }

    /// Saves the model alone.
    public static func save<Scalar: TensorScalar>(model: Module<Scalar>, metadata: [String: String] = [:], to url: URL) throws {
        try Safetensors.save(model.stateDictionary(), metadata: metadata, to: url)
    }

    /// Loads parameters into `model` (and state into `optimizer` when given); returns the metadata.
    /// Every mismatch of names, shapes and dtypes is reported in one error.
    @discardableResult
    public static func load<Scalar: TensorScalar, O: Optimizer>(into model: Module<Scalar>, optimizer: O?, from url: URL) throws
        -> [String: String] where O.Scalar == Scalar {
        let (tensors, metadata) = try Safetensors.loadTensors(Scalar.self, from: url)
        let modelState = tensors.filter { !$0.key.hasPrefix(optimizerPrefix) }
        do {
            try model.loadStateDictionary(modelState)
            if let optimizer {
                let state = Dictionary(uniqueKeysWithValues: tensors.filter { $0.key.hasPrefix(optimizerPrefix) }
                    .map { (String($0.key.dropFirst(optimizerPrefix.count)), $0.value) })
                try optimizer.loadStateDictionary(state)
            }
        } catch let error as StateDictionaryError {
            throw CheckpointError(path: url.path, reason: error.description)
        }
        return metadata
    }

    /// Loads parameters into `model` only.
    @discardableResult
    public static func load<Scalar: TensorScalar>(into model: Module<Scalar>, from url: URL) throws -> [String: String] {
        try load(into: model, optimizer: nil as SGD<Scalar>?, from: url)
    }
}
