using PeftSharp.Core;
using PeftSharp.Methods.Lora;

namespace PeftSharp.Methods.AlLora;

/// <summary>
/// An ALLoRA adapter on a Linear or GPT-2 Conv1D layer: LoRA's factors and names with s = 1 and no dropout
/// (<see cref="LoraFactorsLayer"/>); A Kaiming-uniform, B = 0. The gradient factor is applied by <see cref="AlLoraHooks"/>.
/// </summary>
public sealed class AlLoraLayer(BaseLayer baseLayer) : LoraFactorsLayer(nameof(AlLoraLayer), baseLayer)
{
    public override string PeftType => AlLoraConfig.Type;

    protected override void CreateAdapter(string adapterName, AdapterConfig config)
    {
        var c = (AlLoraConfig)config;
        AddFactors(adapterName, c.Rank, scaling: 1.0, dropout: 0, InitLoraWeights.Default);
    }
}
